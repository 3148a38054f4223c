mod adaptive;
mod faults;
mod isolation;
mod shed;
mod writes;
