'use strict';
// Runs the Zapier app in zapier-platform-core, for tests/test_zapier_host.py:
//   node tester.js validate APP_DIR        the schema errors, as `zapier validate` finds them locally
//   node tester.js run APP_DIR PATH        createAppTester(app)(the app's function at PATH, such as
//                                          creates.KEY.operation.perform; the bundle from stdin)
//   node tester.js callback APP_DIR PATH URL   the same through the core's handler (which
//                                          createAppTester wraps), with URL as Zapier's callback
//                                          URL; prints the envelope's status too (CALLBACK: Zapier waits)
// Prints one JSON document: {"errors": [...]}, {"results": ..., "logs", "status"} or
// {"error": {name, message}}; `logs` holds what the step wrote with z.console.log.
const fs = require('fs');
const path = require('path');

// As under `zapier test`: the core runs its checks of each result, and logs nothing on stdout.
process.env.NODE_ENV = 'test';
const zapier = require('zapier-platform-core');
const { compileApp, validateApp } = require('zapier-platform-core/src/tools/schema');
const createLambdaHandler = require('zapier-platform-core/src/tools/create-lambda-handler');

const [command, appDir, method, callbackUrl] = process.argv.slice(2);
const app = require(path.resolve(appDir));

function print(doc) {
	process.stdout.write(`${JSON.stringify(doc)}\n`);
}

// The step's z.console.log lines: the core writes them with console.log when LOG_TO_STDOUT is
// set (as `zapier invoke` does); kept here instead, so stdout stays one JSON document.
const logs = [];
if (command === 'run') {
	process.env.LOG_TO_STDOUT = '1';
	console.log = (...parts) => logs.push(parts.map(String).join(' '));
}

async function run() {
	const bundle = JSON.parse(fs.readFileSync(0, 'utf8') || '{}');
	const func = method.split('.').reduce((part, key) => part[key], app);
	try {
		if (command === 'run') {
			const results = await zapier.createAppTester(app)(func, bundle);
			print({ results, logs });
		} else {
			const event = { command: 'execute', method, bundle, callback_url: callbackUrl };
			const envelope = await createLambdaHandler(app)(event);
			print({ results: envelope.results, status: envelope.status || null });
		}
	} catch (error) {
		print({ error: { name: error.name, message: error.message } });
	}
}

if (command === 'validate') {
	print({ errors: validateApp(compileApp(app)) });
} else if (command === 'run' || command === 'callback') {
	run();
} else {
	console.error('usage: node tester.js validate|run|callback APP_DIR [PATH [URL]]');
	process.exit(2);
}
