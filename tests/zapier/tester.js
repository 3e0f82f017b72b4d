'use strict';
// Runs the Zapier app in zapier-platform-core, for tests/test_zapier_host.py:
//   node tester.js validate APP_DIR         the schema errors, as `zapier validate` finds them locally
//   node tester.js run APP_DIR PATH         createAppTester(app)(the app's function at PATH, such as
//                                           creates.KEY.operation.perform; the bundle from stdin)
// Prints one JSON document: {"errors": [...]}, {"results": ...} or {"error": {name, message}}.
const path = require('path');

// As under `zapier test`: the core runs its checks of each result, and logs nothing on stdout.
process.env.NODE_ENV = 'test';
const zapier = require('zapier-platform-core');
const { compileApp, validateApp } = require('zapier-platform-core/src/tools/schema');

const [command, appDir, method] = process.argv.slice(2);
const app = require(path.resolve(appDir));

function print(doc) {
	process.stdout.write(`${JSON.stringify(doc)}\n`);
}

async function run() {
	const bundle = JSON.parse(require('fs').readFileSync(0, 'utf8') || '{}');
	const appTester = zapier.createAppTester(app);
	try {
		const func = method.split('.').reduce((part, key) => part[key], app);
		print({ results: await appTester(func, bundle) });
	} catch (error) {
		print({ error: { name: error.name, message: error.message } });
	}
}

if (command === 'validate') {
	print({ errors: validateApp(compileApp(app)) });
} else if (command === 'run') {
	run();
} else {
	console.error('usage: node tester.js validate|run APP_DIR [METHOD]');
	process.exit(2);
}
