mod auth;
mod buckets;
mod http;
mod jwt;
mod limits;
