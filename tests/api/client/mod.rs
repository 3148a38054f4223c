mod fixtures;
mod requests;
mod resilience;
mod sandbox;
mod writes;
