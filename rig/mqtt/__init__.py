"""AWS IoT OTA over MQTT: the rig as AWS IoT Jobs + Streams on a real broker.

- `protocol.py`: topics, CBOR stream messages, the `afr_ota` job document, job statuses;
- `pki.py`: the farm's CA, broker, thing, service and code-signing identities;
- `broker.py`: the embedded mosquitto;
- `service.py`: Jobs + Streams for one thing, with stream faults;
- `images.py`: the files a scenario sends and their (broken) signatures;
- `session.py`: one board's judged AWS IoT OTA experiment.
"""
