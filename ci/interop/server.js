// An LwM2M server of an independent implementation (lwm2m-node-lib), driven by the interop
// suite (tests/test_lwm2m_interop.py): commands are JSON lines on stdin, what happens is JSON
// lines on stdout.
//
//   node server.js PORT
//   {"cmd": "read", "device": "ep", "path": [3, 0, 0]}           -> {"event": "read", "value": ...}
//   {"cmd": "write", "device": "ep", "path": [3, 0, 13], "value": "7"}
//   {"cmd": "execute", "device": "ep", "path": [3, 0, 4]}
//   {"cmd": "discover", "device": "ep", "path": [3, 0]}
//   {"cmd": "observe", "device": "ep", "path": [3, 0, 13]}       -> {"event": "observe", "value": ...},
//                                                                  then {"event": "notify", "value": ...}
'use strict';

const readline = require('readline');
require('logops').setLevel('FATAL'); // its log goes to stdout too: keep that for our events
const server = require('lwm2m-node-lib').server;

const port = Number(process.argv[2]);
const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const config = {
    port: port,
    lifetimeCheckInterval: 1000,
    udpWindow: 100,
    defaultType: 'Device',
    logLevel: 'FATAL',
    ipProtocol: 'udp4',
    serverProtocol: 'udp4',
    formats: [],
    writeFormat: 'text/plain',
    defaultAcceptFormat: 'text/plain',
    deviceRegistry: { type: 'memory' }
};

server.start(config, (error, info) => {
    if (error) { say({ event: 'error', error: String(error) }); process.exit(1); }
    server.setHandler(info, 'registration', (endpoint, lifetime, version, binding, payload, callback) => {
        say({ event: 'registered', endpoint, lifetime, version, binding, payload });
        callback();
    });
    server.setHandler(info, 'updateRegistration', (object, callback) => {
        say({ event: 'updated', endpoint: object.name });
        callback();
    });
    server.setHandler(info, 'unregistration', (device, callback) => {
        say({ event: 'unregistered', endpoint: device.name });
        callback();
    });
    say({ event: 'listening', port });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const c = JSON.parse(line);
    server.getDevice(c.device, (error, device) => {
        if (error) return say({ event: 'error', cmd: c.cmd, error: String(error.message || error) });
        const answer = (error, value) => say(error
            ? { event: 'error', cmd: c.cmd, error: String(error.message || error), code: error.code }
            : { event: c.cmd, value: value === undefined ? null : String(value) });
        const [o, i, r] = c.path;
        if (c.cmd === 'read') server.read(device.id, o, i, r, answer);
        else if (c.cmd === 'write') server.write(device.id, o, i, r, c.value, answer);
        else if (c.cmd === 'execute') server.execute(device.id, o, i, r, c.args || '', answer);
        else if (c.cmd === 'discover') server.discover(device.id, o, i, answer);
        else if (c.cmd === 'observe') {
            const notify = (value) => say({ event: 'notify', path: c.path, value: String(value) });
            server.observe(device.id, o, i, r, notify, answer);
        }
    });
});
