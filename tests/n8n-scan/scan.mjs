// The lint legs of n8n's scanner of community packages (@n8n/scan-community-package), as its
// analyzePackageByName runs them on a published package, here on the package's source folder
// and on its `npm pack` output, unpacked. Its other steps (the npm provenance attestation and the
// download of the attested source) need the registry's copy of a published version.
// Usage: node scan.mjs SOURCE_FOLDER UNPACKED_FOLDER; exit code 1 if either leg fails.
import {
	analyzePackage,
	SOURCE_FILE_PATTERNS,
} from '@n8n/scan-community-package/scanner/scanner.mjs';

const [source, packed] = process.argv.slice(2);
let failed = false;
for (const [name, folder, patterns] of [
	['source', source, SOURCE_FILE_PATTERNS],
	['npm pack output', packed, ['**/*.js', 'package.json']],
]) {
	const result = await analyzePackage(folder, patterns);
	console.log(`${name}: ${result.passed ? 'passed' : `failed: ${result.message}`}`);
	if (result.details) console.log(result.details);
	failed ||= !result.passed;
}
process.exit(failed ? 1 : 0);
