mod fixtures;
mod progress;
mod requests;
mod resilience;
mod sandbox;
mod submit_requests;
mod submit_sandbox;
mod writes;
