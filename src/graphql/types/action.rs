//! The `Action` interface and one object type per ActionKit action type.

use std::sync::Arc;

use async_graphql::{Context, Enum, Interface, Object, SimpleObject, ID};

use super::{CustomField, CustomFieldList, PageNode, UserNode};
use crate::actionkit::{Action, ActionKind};
use crate::graphql::access;
use crate::graphql::error::{GatewayError, GqlResult};
use crate::graphql::loaders::Loaders;

/// The kind of an action or a page, after ActionKit's page types.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActionType {
    /// Signing a petition.
    Petition,
    /// Signing up to a list.
    Signup,
    /// A one-off or first recurring donation.
    Donation,
    /// Signing up to attend an event.
    EventSignup,
    /// Creating (hosting) an event.
    EventCreate,
    /// Unsubscribing.
    Unsubscribe,
    /// Answering a survey.
    Survey,
    /// Calling a target.
    Call,
    /// Writing a letter to a target.
    Letter,
    /// A letter to the editor.
    Lte,
    /// A row of an import.
    Import,
    /// A member updating their own details.
    UserUpdate,
    /// Cancelling a recurring donation.
    RecurringDonationCancel,
    /// Changing a recurring donation.
    RecurringDonationUpdate,
    /// A type this gateway does not know by name.
    Other,
}

impl From<&ActionKind> for ActionType {
    fn from(kind: &ActionKind) -> Self {
        match kind {
            ActionKind::Petition => ActionType::Petition,
            ActionKind::Signup => ActionType::Signup,
            ActionKind::Donation => ActionType::Donation,
            ActionKind::EventSignup => ActionType::EventSignup,
            ActionKind::EventCreate => ActionType::EventCreate,
            ActionKind::Unsubscribe => ActionType::Unsubscribe,
            ActionKind::Survey => ActionType::Survey,
            ActionKind::Call => ActionType::Call,
            ActionKind::Letter => ActionType::Letter,
            ActionKind::Lte => ActionType::Lte,
            ActionKind::Import => ActionType::Import,
            ActionKind::UserUpdate => ActionType::UserUpdate,
            ActionKind::RecurringDonationCancel => ActionType::RecurringDonationCancel,
            ActionKind::RecurringDonationUpdate => ActionType::RecurringDonationUpdate,
            ActionKind::Other(_) => ActionType::Other,
        }
    }
}

impl ActionType {
    /// The ActionKit kind to filter by; `None` for `OTHER`, which names no single type.
    pub fn to_kind(self) -> Option<ActionKind> {
        ActionKind::KNOWN
            .into_iter()
            .find(|k| ActionType::from(k) == self)
    }
}

/// What every action type resolves the same way.
struct SharedActionFields<'a>(&'a Action);

impl SharedActionFields<'_> {
    fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<UserNode> {
        // The member behind an action is member data: a caller that may not read this
        // member (a `submit` key, a key with `write` only) learns nothing, not even
        // whether the user exists, and no upstream call is made.
        access::check_action_user(ctx, self.0.user_id())?;
        let loaders = ctx.data_unchecked::<Loaders>();
        match loaders.user(self.0.user_id()).await {
            Ok(Some(user)) => Ok(UserNode::new(user)),
            Ok(None) => Err(GatewayError::not_found("the action's user no longer exists").into()),
            Err(e) => Err(GatewayError::from(e).into()),
        }
    }
    async fn page(&self, ctx: &Context<'_>) -> GqlResult<PageNode> {
        // A page is not member data (its title is on the organisation's site), and a
        // caller that may see the action knows the page it is on.
        let loaders = ctx.data_unchecked::<Loaders>();
        match loaders.page(self.0.page_id()).await {
            Ok(Some(page)) => Ok(PageNode(page)),
            Ok(None) => Err(GatewayError::not_found("the action's page no longer exists").into()),
            Err(e) => Err(GatewayError::from(e).into()),
        }
    }
    fn custom_field(&self, name: &str) -> Option<CustomField> {
        self.0.fields.get(name).map(|v| CustomField::new(name, v))
    }
}

/// Declares one action object type with the common fields and its own extras.
macro_rules! action_type {
    ($(#[doc = $doc:literal])* $name:ident { $($extra:tt)* }) => {
        $(#[doc = $doc])*
        pub struct $name(pub Arc<Action>);

        $(#[doc = $doc])*
        #[Object]
        impl $name {
            /// The action's ActionKit id.
            async fn id(&self) -> ID {
                SharedActionFields(&self.0).id()
            }
            /// The kind of action.
            #[graphql(name = "type")]
            async fn kind(&self) -> ActionType {
                ActionType::from(&self.0.kind)
            }
            /// ActionKit's status of the action (for example `complete`).
            async fn status(&self) -> &str {
                &self.0.status
            }
            /// Where the action came from (for example `website`, `restful_api`).
            async fn source(&self) -> &str {
                &self.0.source
            }
            /// When the action was taken (naive ISO-8601 timestamp, UTC).
            async fn created_at(&self) -> &str {
                &self.0.created_at
            }
            /// When the action last changed (naive ISO-8601 timestamp, UTC).
            async fn updated_at(&self) -> &str {
                &self.0.updated_at
            }
            /// The member who took the action.
            async fn user(&self, ctx: &Context<'_>) -> GqlResult<UserNode> {
                SharedActionFields(&self.0).user(ctx).await
            }
            /// The page the action was taken on.
            async fn page(&self, ctx: &Context<'_>) -> GqlResult<PageNode> {
                SharedActionFields(&self.0).page(ctx).await
            }
            /// The action's custom fields, sorted by name.
            async fn custom_fields(&self) -> CustomFieldList<'_> {
                CustomFieldList(&self.0.fields)
            }
            /// One custom field by name, or null when the action does not have it.
            async fn custom_field(&self, name: String) -> Option<CustomField> {
                SharedActionFields(&self.0).custom_field(&name)
            }
            $($extra)*
        }
    };
}

action_type!(
    /// A petition signature.
    PetitionAction {}
);
action_type!(
    /// A signup to a list.
    SignupAction {}
);
action_type!(
    /// A donation.
    DonationAction {
        /// The donation's order, when ActionKit reports one.
        async fn order(&self) -> Option<DonationOrder> {
            self.0.order.as_ref().map(|o| DonationOrder {
                id: o.id.map(|id| ID(id.to_string())),
                total: o.total.clone(),
                status: o.status.clone(),
            })
        }
    }
);
action_type!(
    /// A signup to attend an event.
    EventSignupAction {
        /// The id of the event signup record, when ActionKit reports one.
        async fn signup_id(&self) -> Option<ID> {
            self.0.signup.map(|id| ID(id.to_string()))
        }
    }
);
action_type!(
    /// The creation of an event by its host.
    EventCreateAction {
        /// The id of the created event, when ActionKit reports one.
        async fn event_id(&self) -> Option<ID> {
            self.0.event.map(|id| ID(id.to_string()))
        }
    }
);
action_type!(
    /// An unsubscription.
    UnsubscribeAction {}
);
action_type!(
    /// A survey response.
    SurveyAction {}
);
action_type!(
    /// A call to a target.
    CallAction {}
);
action_type!(
    /// A letter to a target.
    LetterAction {}
);
action_type!(
    /// A letter to the editor.
    LteAction {}
);
action_type!(
    /// An imported action.
    ImportAction {}
);
action_type!(
    /// A member's update of their own details.
    UserUpdateAction {}
);
action_type!(
    /// The cancellation of a recurring donation.
    RecurringDonationCancelAction {}
);
action_type!(
    /// A change to a recurring donation.
    RecurringDonationUpdateAction {}
);
action_type!(
    /// An action of a type this gateway does not know by name.
    OtherAction {
        /// ActionKit's name for the action's type.
        async fn type_name(&self) -> &str {
            self.0.kind.type_name()
        }
    }
);

/// A donation's order.
#[derive(SimpleObject, Clone, Debug)]
pub(super) struct DonationOrder {
    /// The order's ActionKit id.
    pub id: Option<ID>,
    /// The order total as ActionKit renders it (a decimal string such as `"10.00"`).
    pub total: Option<String>,
    /// The order's status.
    pub status: Option<String>,
}

/// Something a member did on a page: signed, donated, signed up, called...
// clippy reads the repeated `ty = "&str"` of different fields as a duplicate attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(Interface)]
#[graphql(
    name = "Action",
    field(name = "id", ty = "ID", desc = "The action's ActionKit id."),
    field(
        name = "type",
        method = "kind",
        ty = "ActionType",
        desc = "The kind of action."
    ),
    field(
        name = "status",
        ty = "&str",
        desc = "ActionKit's status of the action."
    ),
    field(name = "source", ty = "&str", desc = "Where the action came from."),
    field(
        name = "created_at",
        ty = "&str",
        desc = "When the action was taken (UTC)."
    ),
    field(
        name = "updated_at",
        ty = "&str",
        desc = "When the action last changed (UTC)."
    ),
    field(
        name = "user",
        ty = "GqlResult<UserNode>",
        desc = "The member who took the action."
    ),
    field(
        name = "page",
        ty = "GqlResult<PageNode>",
        desc = "The page the action was taken on."
    ),
    field(
        name = "custom_fields",
        ty = "CustomFieldList<'_>",
        desc = "The action's custom fields, sorted by name."
    ),
    field(
        name = "custom_field",
        ty = "Option<CustomField>",
        desc = "One custom field by name, or null when the action does not have it.",
        arg(name = "name", ty = "String")
    )
)]
pub enum ActionNode {
    Petition(PetitionAction),
    Signup(SignupAction),
    Donation(DonationAction),
    EventSignup(EventSignupAction),
    EventCreate(EventCreateAction),
    Unsubscribe(UnsubscribeAction),
    Survey(SurveyAction),
    Call(CallAction),
    Letter(LetterAction),
    Lte(LteAction),
    Import(ImportAction),
    UserUpdate(UserUpdateAction),
    RecurringDonationCancel(RecurringDonationCancelAction),
    RecurringDonationUpdate(RecurringDonationUpdateAction),
    Other(OtherAction),
}

impl ActionNode {
    pub fn new(action: Arc<Action>) -> Self {
        match &action.kind {
            ActionKind::Petition => ActionNode::Petition(PetitionAction(action)),
            ActionKind::Signup => ActionNode::Signup(SignupAction(action)),
            ActionKind::Donation => ActionNode::Donation(DonationAction(action)),
            ActionKind::EventSignup => ActionNode::EventSignup(EventSignupAction(action)),
            ActionKind::EventCreate => ActionNode::EventCreate(EventCreateAction(action)),
            ActionKind::Unsubscribe => ActionNode::Unsubscribe(UnsubscribeAction(action)),
            ActionKind::Survey => ActionNode::Survey(SurveyAction(action)),
            ActionKind::Call => ActionNode::Call(CallAction(action)),
            ActionKind::Letter => ActionNode::Letter(LetterAction(action)),
            ActionKind::Lte => ActionNode::Lte(LteAction(action)),
            ActionKind::Import => ActionNode::Import(ImportAction(action)),
            ActionKind::UserUpdate => ActionNode::UserUpdate(UserUpdateAction(action)),
            ActionKind::RecurringDonationCancel => {
                ActionNode::RecurringDonationCancel(RecurringDonationCancelAction(action))
            }
            ActionKind::RecurringDonationUpdate => {
                ActionNode::RecurringDonationUpdate(RecurringDonationUpdateAction(action))
            }
            ActionKind::Other(_) => ActionNode::Other(OtherAction(action)),
        }
    }
}
