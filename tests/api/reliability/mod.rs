mod breaker;
mod faults;
mod shed;
mod writes;
