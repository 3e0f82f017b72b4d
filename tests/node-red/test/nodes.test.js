'use strict';
// Unit tests of the generated Node-RED nodes (hosts/node-red/) in Node-RED's own runtime, through
// node-red-node-test-helper, against a stub of the action server on loopback that records each
// request. The e2e tier (tests/test_e2e.py) runs them in a real Node-RED against the real server.
// Run: npm test (in tests/node-red/), after bash scripts/setup-npm tests/node-red.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const helper = require('node-red-node-test-helper');

const PACKAGE = path.resolve(__dirname, '..', '..', '..', 'hosts', 'node-red');
const pkg = require(path.join(PACKAGE, 'package.json'));
const load = (type) => require(path.join(PACKAGE, pkg['node-red'].nodes[type]));
const NODES = Object.keys(pkg['node-red'].nodes).map(load);
const TOKEN = 'node-red-test-token-5d1e0b7c';

helper.init(require.resolve('node-red'));

const INVALID = {
	error: {
		type: 'invalid_input',
		message: "Temperature: expected a number, got 'hot'",
		fields: [{ name: 'temperature', label: 'Temperature', message: "Temperature: expected a number, got 'hot'" }],
	},
};
const MODELS = [{ value: 'gpt-4o-mini', label: 'gpt-4o-mini (system)' }, { value: 'o3', label: 'o3 (system)' }];

// The stub: each request recorded; an answer chosen by the route, or by the test (stub.next).
const stub = { requests: [], next: null, headers: {} };
const server = http.createServer((req, res) => {
	let text = '';
	req.on('data', (chunk) => (text += chunk));
	req.on('end', () => {
		const body = text ? JSON.parse(text) : undefined;
		stub.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
		let [status, answer] = [200, { object: 'chat.completion', received: body }];
		if (req.headers.authorization !== `Bearer ${TOKEN}`) {
			[status, answer] = [401, { error: { type: 'unauthorized', message: 'A valid bearer token is required.' } }];
		} else if (stub.next) {
			[status, answer] = stub.next;
		} else if (req.url.endsWith('/options/model')) {
			answer = MODELS;
		}
		res.writeHead(status, { 'Content-Type': typeof answer === 'string' ? 'text/plain' : 'application/json', 'X-Request-Id': 'req-1', ...stub.headers });
		res.end(typeof answer === 'string' ? answer : JSON.stringify(answer));
	});
});

let base;
before(async () => {
	await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
	base = `http://127.0.0.1:${server.address().port}`;
	await new Promise((resolve) => helper.startServer(resolve));
});
after(async () => {
	await new Promise((resolve) => helper.stopServer(resolve));
	server.close();
});
afterEach(async () => {
	await helper.unload();
	stub.requests = [];
	stub.next = null;
	stub.headers = {};
});

// A flow: the server configuration, the node under test, a Catch and a Status node for it.
function flow(type, props = {}, url = base) {
	return [
		{ id: 'f', type: 'tab' },
		{ id: 's', type: 'openai-chat-connector-server', url, name: '' },
		{ id: 'n', type, z: 'f', server: 's', name: '', ...props, wires: [['out']] },
		{ id: 'out', type: 'helper', z: 'f' },
		{ id: 'c', type: 'catch', z: 'f', scope: ['n'], uncaught: false, wires: [['caught']] },
		{ id: 'caught', type: 'helper', z: 'f' },
		{ id: 'st', type: 'status', z: 'f', scope: ['n'], wires: [['statuses']] },
		{ id: 'statuses', type: 'helper', z: 'f' },
	];
}

async function start(type, props, url) {
	await helper.load(NODES, flow(type, props, url), { s: { token: TOKEN } });
	const statuses = [];
	helper.getNode('statuses').on('input', (msg) => statuses.push(msg.status.text));
	return statuses;
}

// Send msg to the node; resolve with what came out first: ['out', msg] or ['caught', msg].
function exchange(msg) {
	return new Promise((resolve) => {
		helper.getNode('out').on('input', (m) => resolve(['out', m]));
		helper.getNode('caught').on('input', (m) => resolve(['caught', m]));
		helper.getNode('n').receive(msg);
	});
}

const waitFor = async (check) => {
	for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('the package', () => {
	it('is laid out as Node-RED loads it', () => {
		assert.ok(pkg.keywords.includes('node-red'));
		assert.match(pkg['node-red'].version, /^>=\d/);
		assert.deepEqual(Object.keys(pkg['node-red'].nodes), ['openai-chat-connector-server', 'create-chat-completion', 'list-models']);
	});

	it('registers each listed type, the token as a password credential', async () => {
		await helper.load(NODES, flow('create-chat-completion'), { s: { token: TOKEN } });
		assert.equal(helper.getNode('n').type, 'create-chat-completion');
		assert.equal(helper.getNode('s').url, base);
		assert.deepEqual(helper.getNode('s').credentials, { token: TOKEN });
		// What the runtime keeps out of the flow file: the type's declared credentials.
		assert.deepEqual(helper._redNodes.getCredentialDefinition('openai-chat-connector-server'), { token: { type: 'password' } });
		assert.equal(helper._redNodes.getCredentialDefinition('create-chat-completion'), undefined);
	});
});

describe('create-chat-completion', () => {
	const dialog = { messages: 'Hello!', model: 'gpt-4o-mini', temperature: '0.2', stop: 'END,STOP', max_completion_tokens: '', top_p: '  ' };
	const cases = [
		['the dialog text as typed, blanks left out', dialog, 1234, { messages: 'Hello!', model: 'gpt-4o-mini', temperature: '0.2', stop: 'END,STOP' }],
		['msg.payload overrides by field name', dialog, { temperature: '0.7', max_completion_tokens: 64 }, { messages: 'Hello!', model: 'gpt-4o-mini', temperature: '0.7', stop: 'END,STOP', max_completion_tokens: 64 }],
		['other keys of msg.payload are ignored', { model: 'o3' }, { messages: [{ role: 'user', content: 'Hi' }], note: 'x' }, { model: 'o3', messages: [{ role: 'user', content: 'Hi' }] }],
		['a payload that is not an object is ignored', { model: 'o3' }, ['a', 'list'], { model: 'o3' }],
	];
	for (const [name, props, payload, sent] of cases) {
		it(`sends ${name}`, async () => {
			const statuses = await start('create-chat-completion', props);
			const [port, msg] = await exchange({ payload, topic: 'kept' });
			assert.equal(port, 'out');
			assert.equal(stub.requests.length, 1);
			const [request] = stub.requests;
			assert.equal(request.method, 'POST');
			assert.equal(request.url, '/actions/create_chat_completion/run');
			assert.equal(request.headers.authorization, `Bearer ${TOKEN}`);
			assert.deepEqual(request.body, sent);
			// The output is the server's answer, unchanged; the rest of msg is kept.
			assert.deepEqual(msg.payload, { object: 'chat.completion', received: sent });
			assert.equal(msg.topic, 'kept');
			await waitFor(() => statuses.length >= 2);
			assert.deepEqual(statuses, ['requesting', 'done']);
		});
	}

	it('passes the run\'s warnings on: node.warn for each, msg.warnings beside the output', async () => {
		const said = [{ kind: 'repaired', name: 'messages', label: 'Messages', message: 'read 2 line breaks as \\n' }, { kind: 'truncated', message: 'cut at Max Completion Tokens' }];
		stub.headers = { 'X-Connector-Warnings': JSON.stringify(said) };
		const statuses = await start('create-chat-completion', dialog);
		const warned = [];
		helper.getNode('n').warn = (text) => warned.push(text);
		const [port, msg] = await exchange({ payload: {} });
		assert.equal(port, 'out');
		assert.deepEqual(msg.warnings, said);
		assert.deepEqual(msg.payload.object, 'chat.completion');
		assert.deepEqual(warned, ['Messages: read 2 line breaks as \\n', 'cut at Max Completion Tokens']);
		await waitFor(() => statuses.length >= 2);
		assert.deepEqual(statuses, ['requesting', 'done, with warnings']);
	});

	const failures = [
		['a refused form', [422, INVALID], 'invalid_input', /^Error: Temperature: expected a number, got 'hot'$/],
		['an upstream failure', [502, { error: { type: 'server_error', message: 'HTTP 500 from upstream' } }], 'server_error', /HTTP 500 from upstream/],
		['an answer without an error object', [500, 'Internal Server Error'], 'invalid_response', /answered HTTP 500 without an error object/],
	];
	for (const [name, answer, type, message] of failures) {
		it(`ends ${name} with the connector's error, for a Catch node`, async () => {
			const statuses = await start('create-chat-completion', { model: 'o3', temperature: 'hot' });
			stub.next = answer;
			const [port, msg] = await exchange({ payload: 1 });
			assert.equal(port, 'caught');
			assert.match(msg.error.message, message);
			assert.equal(msg.error.code, type);
			assert.equal(msg.error.cause.type, type);
			assert.equal(msg.error.source.id, 'n');
			assert.equal(msg.payload, 1); // nothing replaced the input
			if (answer[1].error) assert.deepEqual({ ...msg.error.cause, server_request_id: undefined }, { ...answer[1].error, server_request_id: undefined });
			assert.equal(msg.error.cause.server_request_id ?? 'req-1', 'req-1');
			assert.ok(!JSON.stringify(msg).includes(TOKEN));
			await waitFor(() => statuses.length >= 2);
			assert.deepEqual(statuses, ['requesting', type]);
		});
	}

	const unreachable = [
		['nothing listens', 'http://127.0.0.1:9', /at http:\/\/127\.0\.0\.1:9\/actions\/create_chat_completion\/run failed: connect ECONNREFUSED/],
		['not a URL', 'my server', /at my server\/actions\/create_chat_completion\/run failed: Invalid URL/],
		['not HTTP', 'ftp://127.0.0.1', /failed: the URL must start with http:\/\/ or https:\/\//],
	];
	for (const [name, url, message] of unreachable) {
		it(`says so when the server cannot be reached: ${name}`, async () => {
			const statuses = await start('create-chat-completion', { model: 'o3' }, url);
			const [port, msg] = await exchange({ payload: 1 });
			assert.equal(port, 'caught');
			assert.equal(msg.error.code, 'connection');
			assert.match(msg.error.message, message);
			assert.match(msg.error.message, /Check the server's URL, and that it is running\.$/);
			await waitFor(() => statuses.length >= 2);
			assert.deepEqual(statuses, ['requesting', 'connection']);
		});
	}

	it('says so when no server is set, and calls nothing', async () => {
		const props = flow('create-chat-completion', { model: 'o3' }).map((n) => (n.id === 'n' ? { ...n, server: '' } : n));
		await helper.load(NODES, props, { s: { token: TOKEN } });
		const [port, msg] = await exchange({ payload: 1 });
		assert.equal(port, 'caught');
		assert.equal(msg.error.code, 'no_server');
		assert.match(msg.error.message, /Create Chat Completion: no server is set\. Pick one in the node's Server field\./);
		assert.equal(stub.requests.length, 0);
	});

	it('offers the Model options through its admin endpoint', async () => {
		await start('create-chat-completion');
		const ok = await helper.request().get('/create-chat-completion/options/model?server=s');
		assert.equal(ok.status, 200);
		assert.deepEqual(ok.body, MODELS);
		assert.equal(stub.requests.at(-1).url, '/actions/create_chat_completion/options/model');
		assert.equal(stub.requests.at(-1).headers.authorization, `Bearer ${TOKEN}`);
		const table = [
			['/create-chat-completion/options/temperature?server=s', 404, 'unknown_route'],
			['/create-chat-completion/options/model?server=nothing', 404, 'not_deployed'],
			['/create-chat-completion/options/model', 404, 'not_deployed'],
		];
		for (const [url, status, type] of table) {
			const answer = await helper.request().get(url);
			assert.equal(answer.status, status, url);
			assert.equal(answer.body.error.type, type, url);
		}
		stub.next = [401, { error: { type: 'unauthorized', message: 'A valid bearer token is required.' } }];
		const refused = await helper.request().get('/create-chat-completion/options/model?server=s');
		assert.equal(refused.status, 401);
		assert.equal(refused.body.error.type, 'unauthorized');
		assert.ok(!JSON.stringify(refused.body).includes(TOKEN));
	});
});

describe('the admin endpoint', () => {
	it('asks for the node type\'s read permission, and answers nothing without it', async () => {
		// The runtime's needsPermission (which checks the editor user's permissions) replaced
		// by one that records what it was asked for and refuses a request marked so.
		const asked = [];
		const guarded = NODES.map((register) => (RED) => {
			RED.auth = {
				needsPermission: (permission) => (req, res, next) => {
					asked.push(permission);
					if (req.headers['x-refuse']) res.status(401).end();
					else next();
				},
			};
			return register(RED);
		});
		await helper.load(guarded, flow('create-chat-completion'), { s: { token: TOKEN } });
		const url = '/create-chat-completion/options/model?server=s';
		assert.equal((await helper.request().get(url).set('x-refuse', '1')).status, 401);
		assert.equal(stub.requests.length, 0);
		assert.equal((await helper.request().get(url)).status, 200);
		assert.deepEqual(asked, ['create-chat-completion.read', 'create-chat-completion.read']);
	});
});

describe('list-models', () => {
	it('runs List Models with an empty form', async () => {
		const statuses = await start('list-models');
		stub.next = [200, { object: 'list', data: [{ id: 'o3' }] }];
		const [port, msg] = await exchange({ payload: { model: 'ignored' } });
		assert.equal(port, 'out');
		assert.deepEqual(stub.requests.map((r) => [r.method, r.url, r.body]), [['POST', '/actions/list_models/run', {}]]);
		assert.deepEqual(msg.payload, { object: 'list', data: [{ id: 'o3' }] });
		await waitFor(() => statuses.length >= 2);
		assert.deepEqual(statuses, ['requesting', 'done']);
	});
});
