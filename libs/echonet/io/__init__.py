"""I/O adapters of the B-route and the LAN: serial ports, asyncio links, UDP sockets. They drive the sans-IO core."""
