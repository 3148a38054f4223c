mod flow;
mod limits;
mod refusals;
mod scopes;
