//! The backend's routes, one module per resource, as one table.
//!
//! Each module adds its rows to a [`Routes`]: a method, a path pattern and the handler. The
//! router is built from that table and nothing else, so [`table`] — which the
//! tenant-isolation matrix test walks — lists exactly what the backend answers, and a route
//! added later is in it without anyone editing a second list.

mod api_keys;
mod chat;
mod documents;
mod health;
mod page;
mod sessions;
mod settings;
mod sync;
mod webhooks;

use axum::Router;
use axum::handler::Handler;
use axum::http::{Method, Uri};
use axum::routing::{MethodFilter, on};

use crate::{ApiError, AppState};

/// One row of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// The path pattern in axum's syntax: `/api/documents/{id}`.
    pub path: String,
}

/// The table being built, and the router built from it.
pub(crate) struct Routes {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            specs: Vec::new(),
        }
    }

    fn on<H, T>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} cannot be routed"));
        // axum merges the handlers of one path, so a row per method is one route per path.
        self.router = self.router.route(path, on(filter, handler));
        self.specs.push(RouteSpec {
            method,
            path: path.to_owned(),
        });
        self
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H) -> Self {
        self.on(Method::GET, path, h)
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H) -> Self {
        self.on(Method::POST, path, h)
    }

    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H) -> Self {
        self.on(Method::PUT, path, h)
    }

    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &str, h: H) -> Self {
        self.on(Method::DELETE, path, h)
    }
}

fn build() -> Routes {
    let routes = Routes::new();
    let routes = health::routes(routes);
    let routes = settings::routes(routes);
    let routes = api_keys::routes(routes);
    let routes = documents::routes(routes);
    let routes = sessions::routes(routes);
    let routes = chat::routes(routes);
    let routes = sync::routes(routes);
    webhooks::routes(routes)
}

/// Every route the backend answers, in the order the modules declare them.
pub fn table() -> Vec<RouteSpec> {
    build().specs
}

pub(crate) fn router() -> Router<AppState> {
    build()
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("No route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_each_route_once() {
        let table = table();
        assert!(table.len() > 30, "{table:?}");
        for (i, spec) in table.iter().enumerate() {
            assert!(
                !table[..i].contains(spec),
                "{} {} is declared twice",
                spec.method,
                spec.path
            );
        }
    }
}
