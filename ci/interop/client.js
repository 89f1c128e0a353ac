// An LwM2M client of an independent implementation (lwm2m-node-lib), driven by the interop
// suite (tests/test_lwm2m_interop.py): commands are JSON lines on stdin, what happens is JSON
// lines on stdout.
//
//   node client.js HOST PORT ENDPOINT
//   {"cmd": "set", "object": "/3/0", "resource": "13", "value": "99"}
//   {"cmd": "get", "object": "/3/0"}        -> {"event": "object", "attributes": {...}}
//   {"cmd": "update"} | {"cmd": "unregister"}
'use strict';

const readline = require('readline');
require('logops').setLevel('FATAL'); // its log goes to stdout too: keep that for our events
const client = require('lwm2m-node-lib').client;

const [host, port, endpoint] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');

client.init({
    client: {
        lifetime: '60',
        version: '1.0',
        logLevel: 'FATAL',
        observe: { period: 3000 },
        ipProtocol: 'udp4',
        serverProtocol: 'udp4',
        formats: [],
        writeFormat: 'text/plain'
    }
});

const device = {
    0: 'Telefonica I+D', 1: 'lwm2m-node-lib', 2: 'interop-1', 3: '1.4.0', 13: '1700000000'
};

function create(callback) {
    client.registry.create('/3/0', (error) => {
        if (error) return callback(error);
        const ids = Object.keys(device);
        const next = (i) => i === ids.length ? callback() :
            client.registry.setResource('/3/0', ids[i], device[ids[i]], (e) => e ? callback(e) : next(i + 1));
        next(0);
    });
}

let info = null;

function handlers() {
    client.setHandler(info.serverInfo, 'write', (objectType, objectId, resourceId, value, callback) => {
        say({ event: 'write', path: `/${objectType}/${objectId}/${resourceId}`, value: String(value) });
        callback();
    });
    client.setHandler(info.serverInfo, 'execute', (objectType, objectId, resourceId, args, callback) => {
        say({ event: 'execute', path: `/${objectType}/${objectId}/${resourceId}`, args: String(args || '') });
        callback();
    });
    client.setHandler(info.serverInfo, 'read', (objectType, objectId, resourceId, value, callback) => {
        say({ event: 'read', path: `/${objectType}/${objectId}/${resourceId}` });
        callback(null, value);
    });
}

create((error) => {
    if (error) { say({ event: 'error', error: String(error) }); process.exit(1); }
    client.register(host, port, null, endpoint, (error, deviceInfo) => {
        if (error) { say({ event: 'error', error: String(error.message || error) }); process.exit(1); }
        info = deviceInfo;
        handlers();
        say({ event: 'registered', location: info.location });
    });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const c = JSON.parse(line);
    const done = (event) => (error) => say(error ? { event: 'error', error: String(error.message || error) } : event);
    if (c.cmd === 'set') {
        client.registry.setResource(c.object, c.resource, c.value, done({ event: 'set', object: c.object }));
    } else if (c.cmd === 'get') {
        client.registry.get(c.object, (error, obj) =>
            say(error ? { event: 'error', error: String(error) } : { event: 'object', attributes: obj.attributes }));
    } else if (c.cmd === 'update') {
        client.update(info, done({ event: 'updated' }));
    } else if (c.cmd === 'unregister') {
        client.unregister(info, (error) => { done({ event: 'unregistered' })(error); process.exit(0); });
    }
});
