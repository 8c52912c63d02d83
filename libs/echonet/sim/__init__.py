"""Simulators: a 0x0288 meter, a virtual Wi-SUN module (on a pty), a LAN node. The demo and the tests use them."""
