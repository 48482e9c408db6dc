"""The pieces of the conversion job: pure functions with thin Beam wrappers around them."""
