mod auth;
mod http;
mod jwt;
mod limits;
