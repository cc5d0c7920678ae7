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
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Holdfast API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Address screening against sanctions (OFAC SDN), DPRK attributions and labelled services; the guard service (decisions before signing, holds, approvals, freezes, audit log); the watch's alerts (list, acknowledge, live stream)."
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
            "/v1/guard/requests": { "post": {
                "summary": "Submit a request to be decided (and signed if allowed): a transaction, a raw signed transaction, a Safe Transaction Service multisig transaction, or a withdrawal",
                "security": [ { "bearerToken": ["initiator"] } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "200": { "description": "The recorded request: id, state (denied, held, awaiting_approvals, signed, broadcast, ...), decision, rule, reasons, payload hash, signature or transaction hash, and the full report", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GuardOutcome" } } } },
                    "400": err("The request does not parse (the message names the field)"),
                    "401": err("Missing or unknown token"),
                    "403": err("The token lacks the initiator role"),
                    "413": err("Body over 1 MiB (the guard's request limit; every guard route has it)"),
                    "429": err("The token is over its rate limit"),
                    "503": err("The state store or the node failed: nothing was signed")
                }
            }},
            "/v1/guard/requests/{id}": { "get": {
                "summary": "A request's current state",
                "security": [ { "bearerToken": [] } ],
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                    "200": { "description": "The request", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GuardOutcome" } } } },
                    "401": err("Missing or unknown token"),
                    "404": err("No such request")
                }
            }},
            "/v1/guard/requests/{id}/approvals": { "post": {
                "summary": "Add an approval: the approver's EIP-712 signature over (request id, payload hash, chain id, action, deadline)",
                "security": [ { "bearerToken": ["approver"] } ],
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SignedApproval" } } } },
                "responses": {
                    "200": { "description": "The request after the approval (signed once enough distinct group members approved)" },
                    "400": err("Malformed or expired approval"),
                    "403": err("Not a member of the group, the initiator, another payload, chain or request, or the token lacks the approver role"),
                    "409": err("Already approved by this approver (a replay), or the request takes no approvals")
                }
            }},
            "/v1/guard/requests/{id}/cancel": { "post": {
                "summary": "Cancel a held request or one awaiting approvals: it is never signed",
                "security": [ { "bearerToken": ["operator"] } ],
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string" } } } } } },
                "responses": {
                    "200": { "description": "Cancelled" },
                    "403": err("The token lacks the operator role"),
                    "409": err("The request is not held nor awaiting approvals")
                }
            }},
            "/v1/guard/freeze": { "post": {
                "summary": "Emergency freeze: stop all signing for a wallet, or for everything",
                "security": [ { "bearerToken": ["operator"] } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["reason"], "properties": { "wallet": { "type": "string" }, "reason": { "type": "string" } } } } } },
                "responses": {
                    "200": { "description": "Frozen; the hash that unfreeze approvals must sign" },
                    "403": err("The token lacks the operator role")
                }
            }},
            "/v1/guard/unfreeze": { "post": {
                "summary": "Lift a freeze with the approval quorum (EIP-712 approvals with action unfreeze)",
                "security": [ { "bearerToken": ["admin"] } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["approvals"], "properties": { "wallet": { "type": "string" }, "approvals": { "type": "array", "items": { "$ref": "#/components/schemas/SignedApproval" } } } } } } },
                "responses": {
                    "200": { "description": "Lifted" },
                    "403": err("Not enough valid approvals from the unfreeze group, or the token lacks the admin role"),
                    "409": err("Not frozen")
                }
            }},
            "/v1/guard/audit": { "get": {
                "summary": "The hash-chained audit log, in order",
                "security": [ { "bearerToken": ["admin"] } ],
                "parameters": [
                    { "name": "from", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1 } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "maximum": 10000 } }
                ],
                "responses": {
                    "200": { "description": "Entries: seq, at, kind, request_id, actor, details, prev, hash" },
                    "403": err("The token lacks the admin role")
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
            "securitySchemes": {
                "adminToken": { "type": "http", "scheme": "bearer" },
                "bearerToken": { "type": "http", "scheme": "bearer", "description": "A guard service token; its roles (initiator, operator, approver, admin) are in the service configuration" }
            },
            "schemas": {
                "GuardOutcome": { "type": "object", "required": ["id", "state", "decision", "reasons", "payload_hash"], "properties": {
                    "id": { "type": "string" },
                    "state": { "type": "string", "enum": ["denied", "held", "awaiting_approvals", "signing", "signed", "broadcast", "cancelled", "failed", "included"] },
                    "decision": { "type": "string", "enum": ["allow", "hold", "require_approvals", "deny"] },
                    "rule": { "type": ["string", "null"] },
                    "reasons": { "type": "array", "items": { "type": "string" } },
                    "payload_hash": { "type": "string" },
                    "release_at": { "type": "integer" },
                    "approvals": { "type": "object" },
                    "signature": { "type": "string" },
                    "signer": { "type": "string" },
                    "tx_hash": { "type": "string" },
                    "nonce": { "type": "integer" },
                    "error": { "type": "string" },
                    "report": { "type": "object" } } },
                "SignedApproval": { "type": "object", "additionalProperties": false, "required": ["requestId", "payloadHash", "chainId", "action", "deadline", "signature"], "properties": {
                    "requestId": { "type": "string" }, "payloadHash": { "type": "string" }, "chainId": { "type": "integer" },
                    "action": { "type": "string", "enum": ["approve", "unfreeze"] }, "deadline": { "type": "integer" }, "signature": { "type": "string" } } },
                "Error": { "type": "object", "required": ["error"], "description": "Every error answer, also those no route lists: 405 (method_not_allowed, with an Allow header), 408 (request_timeout: the body did not arrive in time), 413 (payload_too_large), 414 (uri_too_long: a request target over 8 KiB), 431 (header_too_large), 400 for a request head that does not parse. A path or query parameter at fault is named in field; a query parameter given twice is refused.", "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string", "description": "bad_request, unauthorized, forbidden, not_found, method_not_allowed, request_timeout, conflict, payload_too_large, uri_too_long, rate_limited, header_too_large, internal, unavailable" }, "message": { "type": "string" }, "field": { "type": "string" } } } } },
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
                    "reasons": { "type": "array", "items": { "type": "string" } },
                    "cluster": { "$ref": "#/components/schemas/Cluster" } } },
                "Cluster": { "type": "object", "required": ["status"], "description": "Bitcoin and Litecoin addresses only: the address's cluster in the UTXO index (common-input ownership) and the labels of its other members, inherited (status clustered), or why there is none (status unavailable, note)", "properties": {
                    "status": { "type": "string", "enum": ["clustered", "unavailable"] },
                    "note": { "type": "string" },
                    "network": { "type": "string" },
                    "root": { "type": "string", "description": "The cluster's representative address (union-find root)" },
                    "size": { "type": "integer", "minimum": 1 },
                    "screened": { "type": "integer", "minimum": 0 },
                    "complete": { "type": "boolean" },
                    "heuristic": { "type": "string" },
                    "inherited": { "type": "array", "items": { "type": "object", "required": ["member", "confidence", "risk", "label"], "properties": {
                        "member": { "type": "string", "description": "The member carrying the label" },
                        "confidence": { "type": "integer", "minimum": 0, "maximum": 100, "description": "Of the inference: the label's, at most 10 (heuristic)" },
                        "risk": { "$ref": "#/components/schemas/RiskLevel" },
                        "label": { "$ref": "#/components/schemas/Label" } } } } } },
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
    });
    for (path, ops) in crate::alerts::openapi_paths(&err) {
        doc["paths"][path] = ops;
    }
    doc["components"]["schemas"]["Alert"] = crate::alerts::openapi_schema();
    doc
}
