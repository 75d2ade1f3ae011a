"""The serving test harness (`make test-serving`); not part of the foveate package."""
