//! The objects behind handles: a thin shell of state around core types.

use std::sync::{Arc, Mutex, RwLock};

use super::calls::CallStates;
use crate::core::{EcKey, HttpClient};

#[derive(Default)]
pub struct KeyObj {
    pub key: RwLock<Option<Arc<EcKey>>>,
    pub calls: CallStates,
}

#[derive(Default)]
pub struct JsonObj {
    pub map: Mutex<serde_json::Map<String, serde_json::Value>>,
    pub calls: CallStates,
}

#[derive(Default)]
pub struct HttpObj {
    pub client: HttpClient,
    pub calls: CallStates,
}

impl std::fmt::Debug for KeyObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyObj").field("key", &*self.key.read().unwrap_or_else(|e| e.into_inner())).finish()
    }
}

/// Shows member names only: values may be secrets (`client_secret`).
impl std::fmt::Debug for JsonObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("JsonObj").field("members", &map.keys().collect::<Vec<_>>()).finish()
    }
}

impl std::fmt::Debug for HttpObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpObj").field("client", &self.client).finish()
    }
}

/// A JSON object often holds the client secret: wipe its strings when it goes away.
impl Drop for JsonObj {
    fn drop(&mut self) {
        let map = self.map.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut v = serde_json::Value::Object(std::mem::take(map));
        crate::core::redact::wipe_json(&mut v);
    }
}
