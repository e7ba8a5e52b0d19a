# Example data shared by the demo, the self-test, the tests and the benches. Never imported by
# the running agent, so it costs a board flash, not heap.

# The SetCHFSubGHzConfiguration of the DCC Boxed DBCH04 6.28 template, as the agent takes it.
DBCH04_CONFIG = {
    "LowerBandSubGHzChannels0To26": [1, 2],
    "LowerBandSubGHzChannels27To34": [28, 29],
    "LowerBandSubGHzChannels35To61": [36, 37],
    "UpperBandSubGHzChannels0To26": [1, 2],
    "NormalLimitedDutyCycleThreshold": "1.3",
    "LimitedCriticalDutyCycleThreshold": "2.2",
    "MaximumSubGHzChannelChangesPerWeek": 5,
    "GSMECurfew": 7,
    "ChannelQuieterThreshold": 7,
    "ChannelNoisierThreshold": 12,
    "NonGSMEPoorCommsPercentageThreshold": "60.00",
    "NonGSMEPoorCommsMeasurementPeriods": 130,
    "LocalCHNoiseMeasurementPeriod": 100,
    "LocalCHFailurePercentage": "40.00",
    "LocalCHRetryPercentage": "30.00",
}
