"""The wheel carries the card's top-level files inside the package; a checkout reads them in place.

manifest.yaml and schemas/*.json go to connector/data/, actions/*.py to connector/actions/
(connector/manifest.py and connector/__init__.py look there when not in a checkout).

They are copied at build time rather than mapped with [tool.setuptools.package-dir]: a mapped
folder turns setuptools' editable install into an import hook, which warns on every
`pip install -e .` ("Editable installation ... folders with the same name as your package").
With the plain layout of pyproject.toml, `pip install -e .` is one .pth line, and silent.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# (source folder, glob, folder in the wheel)
CARD = (
    (".", "manifest.yaml", "connector/data"),
    ("schemas", "*.json", "connector/data/schemas"),
    ("actions", "*.py", "connector/actions"),
)


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # the checkout's own files are read where they are
        for folder, pattern, target in CARD:
            for source in sorted(Path(folder).glob(pattern)):
                dest = Path(self.build_lib, target, source.name)
                self.mkpath(str(dest.parent))
                self.copy_file(str(source), str(dest))


setup(cmdclass={"build_py": BuildPy})
