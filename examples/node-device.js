// node-device.js — a device written on Microsoft's Node device SDK
// (azure-iot-device with azure-iot-device-mqtt, unmodified), as in
// Microsoft's own samples: it connects with DEVICE_CONNECTION_STRING, answers
// the direct method reboot (200, then it reports
// iothubDM.reboot.lastReboot, as a device that has rebooted does) and echo,
// and runs until SIGINT or SIGTERM, when it closes its client and exits 0.
//
// Install the SDK with `npm install azure-iot-device azure-iot-device-mqtt`
// (in this repository `make conformance-deps` installs it under
// test/conformance/node_modules: set NODE_PATH there). Against hubsim the
// connection string comes from its ready line (GatewayHostName is the MQTT
// address) and NODE_EXTRA_CA_CERTS, in hubsim.env, trusts its CA.
'use strict';

const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const cs = process.env.DEVICE_CONNECTION_STRING;
if (!cs) {
  console.error('node-device: DEVICE_CONNECTION_STRING is empty: give the device\'s connection string');
  process.exit(2);
}
const client = Client.fromConnectionString(cs, Mqtt);

const main = async () => {
  await client.open();
  const twin = await client.getTwin();
  client.onDeviceMethod('reboot', (request, response) => {
    response.send(200, { rebooting: true }, (err) => {
      if (err) return console.error('node-device: answering reboot:', err.message);
      const lastReboot = new Date().toISOString();
      twin.properties.reported.update({ iothubDM: { reboot: { lastReboot } } }, (e) => {
        if (e) return console.error('node-device: reporting lastReboot:', e.message);
        console.log('node-device: rebooted at', lastReboot);
      });
    });
  });
  client.onDeviceMethod('echo', (request, response) => response.send(200, request.payload));
  console.log('node-device: connected');
};

const stop = () => client.close(() => { console.log('node-device: stopped'); process.exit(0); });
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
main().catch((err) => { console.error('node-device:', err.message); process.exit(1); });
