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

/// Every type, field, argument-less or not, input field and enum value that
/// `print-schema` prints has a description, so GraphiQL's docs explain all of them.
#[test]
fn every_type_and_field_has_a_description() {
    use async_graphql::parser::types::{InterfaceType, ObjectType, TypeKind, TypeSystemDefinition};
    let sdl = actionkit_graphql::graphql::sdl();
    let doc = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
    let mut missing = Vec::new();
    let mut types = 0;
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let t = &t.node;
        types += 1;
        let name = t.name.node.as_str();
        if t.description.is_none() {
            missing.push(format!("type {name}"));
        }
        let mut member = |what: &str, has: bool| {
            if !has {
                missing.push(format!("{name}.{what}"));
            }
        };
        match &t.kind {
            TypeKind::Object(ObjectType { fields, .. })
            | TypeKind::Interface(InterfaceType { fields, .. }) => fields
                .iter()
                .for_each(|f| member(&f.node.name.node, f.node.description.is_some())),
            TypeKind::InputObject(i) => i
                .fields
                .iter()
                .for_each(|f| member(&f.node.name.node, f.node.description.is_some())),
            TypeKind::Enum(e) => e
                .values
                .iter()
                .for_each(|v| member(&v.node.value.node, v.node.description.is_some())),
            TypeKind::Scalar | TypeKind::Union(_) => {}
        }
    }
    assert!(types > 20, "the schema was not read: {types} types");
    assert!(
        missing.is_empty(),
        "without a description (add a doc comment in src/graphql/): {missing:#?}"
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
