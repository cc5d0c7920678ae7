//! holdfast-chain integration tests.

mod detail;
mod etl_fixtures;
mod heads;
mod logs;
