mod filters;
mod fixtures;
mod knobs;
mod reads;
mod robustness;
mod scale;
mod stability;
mod writes;
