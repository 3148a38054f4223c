mod adaptive;
mod breaker;
mod faults;
mod isolation;
mod shed;
mod writes;
