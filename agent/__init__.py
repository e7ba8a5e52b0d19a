# The portable hub agent: domain logic only. Hardware comes in as HAL objects.
# The version is the firmware version reported upward (sr:FirmwareVersion: 1 to 8 characters).
VERSION = "0.1.0"
