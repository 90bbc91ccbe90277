//! Integration tests of the S3 gateway's request authentication.

mod auth_fixtures;
mod auth_oracle;

/// The module under test, named once so the tests move with it.
use cairn_gateway::auth;
