//! holdfast-chain integration tests.

mod etl_fixtures;
