mod apq;
mod batching;
mod http;
mod mutations;
mod ops;
mod proptest_inputs;
mod queries;
mod schema_sdl;
