//! Placeholder: the litecoind regtest tests come with the testkit harness.
