mod sandbox;
mod spike;
