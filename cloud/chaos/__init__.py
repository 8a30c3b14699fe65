"""`framesieve-cloud chaos`: the fault campaign, on loopback. A real gateway, broker, router, store and
teacher are broken one way after another (cloud/chaos/stream.py) and fed bad input (inputs.py); the
table says, for each fault, what was checked and the lost, duplicated and stalled figures."""
