"""Agent firmware on the host side: compiling the portable code (build), the agent for a board
and its images (image_build), image files (images), signing keys and signatures (sign), staging an
image on a hub (stage), flashing a board (flash) and handing its line between the agent and the
REPL (handover), and checking versions against the Central Products List (cpl). The commands are
host_tools.cli.flash and host_tools.cli.firmware."""
