"""Agent firmware on the host side: compiling the portable code, flashing boards, building,
signing and sending images, and checking versions against the Central Products List."""
