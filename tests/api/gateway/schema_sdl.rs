//! `schema.graphql` is what `actionkit-graphql print-schema` prints.

#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let current = actionkit_graphql::graphql::sdl();
    assert!(
        on_disk == current,
        "schema.graphql is stale; regenerate it with:\n\n    cargo run -- print-schema > schema.graphql\n"
    );
}

#[test]
fn schema_keeps_the_contract_names() {
    let sdl = actionkit_graphql::graphql::sdl();
    for needle in [
        "user(id: ID, email: String, akid: String): User",
        "users(ids: [ID!]!): [User]!",
        "action(id: ID!): Action",
        "page(id: ID, name: String): Page",
        "type: ActionType,",
        "pageName: String,",
        "first: Int = 20,",
        "after: String\n\t): ActionConnection!",
        "setActionCustomFields(actionId: ID!, fields: [CustomFieldInput!]!): Action!",
        "clearActionCustomFields(actionId: ID!, names: [String!]): Action!",
        "interface Action",
        "type OtherAction implements Action",
        "type PetitionAction implements Action",
        "type DonationAction implements Action",
        "type EventSignupAction implements Action",
    ] {
        assert!(sdl.contains(needle), "the schema lost {needle:?}");
    }
}
