//! The OpenAPI 3.1 document served at `/openapi.json`. Hand-written beside the routes; the
//! integration tests check that it lists exactly the routes of [`crate::router`].

use serde_json::{Value, json};

/// The OpenAPI document of this server.
pub fn openapi() -> Value {
    let err = |desc: &str| json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let chains: Vec<&str> = holdfast_primitives::Chain::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    let categories: Vec<&str> = holdfast_primitives::Category::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Holdfast API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Address screening against sanctions (OFAC SDN), DPRK attributions and labelled services."
        },
        "paths": {
            "/v1/screen": { "post": {
                "summary": "Screen a batch of addresses (at most 10,000)",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ScreenRequest" } } } },
                "responses": {
                    "200": { "description": "A verdict per address, in request order", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ScreenResponse" } } } },
                    "400": err("Malformed body, unknown field, invalid address (field names it, e.g. addresses[3]), unknown chain or bad as_of"),
                    "413": err("Body over 2 MiB or more than 10,000 addresses")
                }
            }},
            "/v1/addresses/{chain}/{address}": { "get": {
                "summary": "Screen one address on one chain",
                "parameters": [
                    { "name": "chain", "in": "path", "required": true, "schema": { "type": "string", "enum": chains }, "description": "Chain name or ticker (eth, btc, trx, ...)" },
                    { "name": "address", "in": "path", "required": true, "schema": { "type": "string", "maxLength": 128 } },
                    { "name": "as_of", "in": "query", "required": false, "schema": { "type": "string", "format": "date" }, "description": "Judge list membership on this day (default: today)" }
                ],
                "responses": {
                    "200": { "description": "The verdict", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Verdict" } } } },
                    "400": err("Invalid address for the chain, unknown chain, or bad as_of")
                }
            }},
            "/v1/admin/reload": { "post": {
                "summary": "Reload intel from the data directory and swap it in atomically",
                "security": [ { "adminToken": [] } ],
                "responses": {
                    "200": { "description": "Reloaded; label counts and load report" },
                    "401": err("Missing or wrong admin token"),
                    "404": err("Admin endpoints disabled (no admin token configured)"),
                    "500": err("Reload failed; the old intel stays in place")
                }
            }},
            "/healthz": { "get": {
                "summary": "Liveness and loaded intel size",
                "responses": { "200": { "description": "ok" } }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "responses": { "200": { "description": "metrics", "content": { "text/plain": {} } } }
            }},
            "/openapi.json": { "get": {
                "summary": "This document",
                "responses": { "200": { "description": "OpenAPI 3.1 document" } }
            }}
        },
        "components": {
            "securitySchemes": { "adminToken": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } } } },
                "ScreenRequest": { "type": "object", "additionalProperties": false, "required": ["addresses"], "properties": {
                    "addresses": { "type": "array", "minItems": 1, "maxItems": 10000, "items": { "type": "string" } },
                    "chain": { "type": "string", "enum": chains },
                    "as_of": { "type": "string", "format": "date" } } },
                "ScreenResponse": { "type": "object", "required": ["as_of", "risk", "results"], "properties": {
                    "as_of": { "type": "string", "format": "date" },
                    "risk": { "$ref": "#/components/schemas/RiskLevel" },
                    "results": { "type": "array", "items": { "$ref": "#/components/schemas/Verdict" } } } },
                "RiskLevel": { "type": "string", "enum": ["none", "low", "medium", "high", "severe"] },
                "Verdict": { "type": "object", "required": ["input", "address", "format", "chains", "risk", "as_of", "labels", "reasons"], "properties": {
                    "input": { "type": "string" },
                    "address": { "type": "string", "description": "Canonical form (EIP-55 for EVM)" },
                    "format": { "type": "string" },
                    "chains": { "type": "array", "items": { "type": "string", "enum": chains } },
                    "risk": { "$ref": "#/components/schemas/RiskLevel" },
                    "as_of": { "type": "string", "format": "date" },
                    "labels": { "type": "array", "items": { "$ref": "#/components/schemas/Label" } },
                    "reasons": { "type": "array", "items": { "type": "string" } } } },
                "Label": { "type": "object", "required": ["source", "category", "confidence", "risk", "active", "chains"], "properties": {
                    "source": { "type": "string" },
                    "category": { "type": "string", "enum": categories },
                    "confidence": { "type": "integer", "minimum": 0, "maximum": 100, "description": "GraphSense TagPack scale" },
                    "risk": { "$ref": "#/components/schemas/RiskLevel" },
                    "active": { "type": "boolean" },
                    "chains": { "type": "array", "items": { "type": "string" } },
                    "actor": { "type": "string" }, "name": { "type": "string" }, "program": { "type": "string" },
                    "uid": { "type": "string" }, "reference": { "type": "string" },
                    "listed_on": { "type": "string", "format": "date" }, "delisted_on": { "type": "string", "format": "date" },
                    "case_folded": { "type": "boolean" } } }
            }
        }
    })
}
