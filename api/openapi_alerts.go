package api

// The alert and silence routes of the OpenAPI document.
func addAlertOpenAPI(paths, schemas, params obj) {
	strMap := func(desc string) obj {
		return obj{"type": "object", "additionalProperties": obj{"type": "string"}, "description": desc}
	}
	sev := obj{"type": "string", "enum": []string{"P0", "P1", "P2", "P3", "P4"}, "description": "P0 most urgent"}
	params["alertState"] = qparam("state", "Only alerts in this state.", obj{"type": "string", "enum": []string{"pending", "firing", "resolved"}}, "firing")
	params["alertSeverity"] = qparam("severity", "Only alerts of this severity (P0..P4).", obj{"type": "string"}, "P1")
	params["alertTenant"] = qparam("tenant", "Only alerts whose subject (either side of a pair) is in this tenant.", obj{"type": "string"}, "acme")
	params["alertVM"] = qparam("vm", "Only alerts whose subject is this VM (the VM, either side of a pair, or the peer).", obj{"type": "string"}, "web-1")

	schemas["Alert"] = object("One alert: one rule and one subject.", obj{
		"fingerprint": str("stable id of rule + subject (the dedup key)"),
		"rule":        str("rule name"),
		"kind":        str("rule kind: threshold, baseline, new_peer, fan_out, fan_in, failing_connections, rst_storm, icmp_unreachable, pair_absent, exporter_silent, self_drops"),
		"severity":    sev,
		"state":       obj{"type": "string", "enum": []string{"pending", "firing", "resolved"}},
		"labels":      strMap("alertname, severity, rule, kind and the subject's tenant, host, vm, src, dst, peer, exporter, metric as they apply, plus the rule's labels"),
		"annotations": strMap("summary, description, value, peak, threshold, baseline (baseline rules), link"),
		"active_at":   dateTime("first window of the condition (pending since)"),
		"starts_at":   dateTime("firing since (absent while pending)"),
		"ends_at":     dateTime("resolved at (resolved alerts only)"),
		"last_eval":   dateTime("end of the last window that evaluated the subject"),
		"value":       num("last value of the signal"),
		"peak":        num("highest value since firing (lowest for `op: below`)"),
		"threshold":   num("threshold, or the edge of the baseline's normal range"),
		"baseline":    num("learned level (baseline rules)"),
		"link":        str("console view of the subject, e.g. /#/vm/web-1 or /#/pair/web-1/db-1"),
		"silenced":    boolean("muted by a silence"),
		"inhibited":   boolean("suppressed by a firing P0 of the same VM (alert.inhibit)"),
	}, "fingerprint", "rule", "kind", "severity", "state", "labels", "annotations", "active_at", "last_eval", "value", "peak", "threshold", "link", "silenced", "inhibited")
	schemas["AlertsResponse"] = object("", obj{"alerts": arrayOf(ref("Alert"), "pending and firing alerts, then recently resolved ones (alert.recent), newest state change first")}, "alerts")
	schemas["RuleStatus"] = object("", obj{
		"name":         str("rule name"),
		"kind":         str("rule kind"),
		"severity":     sev,
		"subject":      obj{"type": "string", "enum": []string{"pair", "vm", "exporter", "self"}},
		"signal":       str("signal watched"),
		"state":        obj{"type": "string", "enum": []string{"ok", "disabled"}},
		"last_eval":    dateTime("end of the last window evaluated"),
		"eval_seconds": num("time the last evaluation of this rule took"),
		"pending":      integer("alerts pending"),
		"firing":       integer("alerts firing"),
		"spec":         obj{"type": "object", "description": "the rule as written (see README: rule file format)", "additionalProperties": true},
	}, "name", "kind", "severity", "subject", "state", "eval_seconds", "pending", "firing", "spec")
	schemas["RulesResponse"] = object("", obj{
		"file":      str("rules file; empty = the built-in default pack"),
		"loaded_at": dateTime("when the rules in force were loaded"),
		"error":     str("why the last reload failed (the last good rules stay in force); absent when the file's content is in force"),
		"error_at":  dateTime("when the reload failed"),
		"rules":     arrayOf(ref("RuleStatus"), "rules in file order"),
	}, "file", "loaded_at", "rules")
	matcher := object("Matches one label (as Alertmanager's matchers).", obj{
		"name":    str("label name"),
		"value":   str("value, or a regular expression (anchored) with isRegex"),
		"isRegex": boolean("value is a regular expression"),
		"isEqual": boolean("false: the matcher is negated (default true)"),
	}, "name", "value", "isRegex")
	schemas["Matcher"] = matcher
	schemas["Silence"] = object("Mutes the alerts whose labels match every matcher between startsAt and endsAt.", obj{
		"id":        str("silence id"),
		"matchers":  arrayOf(ref("Matcher"), "all must match"),
		"startsAt":  dateTime("start"),
		"endsAt":    dateTime("end"),
		"createdBy": str("who"),
		"comment":   str("why"),
		"state":     obj{"type": "string", "enum": []string{"active", "pending", "expired"}},
	}, "id", "matchers", "startsAt", "endsAt", "createdBy", "comment", "state")
	schemas["SilenceInput"] = object("A new silence, or with `id` a replacement of one.", obj{
		"id":        str("replace this silence (optional)"),
		"matchers":  arrayOf(ref("Matcher"), "at least one; not all may match the empty string"),
		"startsAt":  dateTime("default now"),
		"endsAt":    dateTime("required, in the future"),
		"createdBy": str("who"),
		"comment":   str("required"),
	}, "matchers", "endsAt", "comment")
	schemas["SilencesResponse"] = object("", obj{"silences": arrayOf(ref("Silence"), "newest first; expired ones are kept for a day")}, "silences")
	schemas["SilenceResponse"] = object("", obj{"silence": ref("Silence")}, "silence")
	schemas["SilenceDeleted"] = object("", obj{"id": str("silence id"), "state": str("expired")}, "id", "state")

	off := errResp("alerting is disabled")
	noParams := errResp("a query parameter was given; this route takes none")
	paths["/api/v1/alerts"] = obj{"get": obj{
		"operationId": "listAlerts",
		"summary":     "Pending, firing and recently resolved alerts, newest first",
		"parameters":  []any{pref("alertState"), pref("alertSeverity"), pref("alertTenant"), pref("alertVM")},
		"responses": obj{
			"200": jsonResp("alerts", "AlertsResponse"),
			"400": errResp("bad or unknown query parameter"),
			"503": off,
		},
	}}
	paths["/api/v1/alerts/rules"] = obj{"get": obj{
		"operationId": "listAlertRules",
		"summary":     "Every rule with its state, last evaluation and the rules file's errors",
		"responses":   obj{"200": jsonResp("rules", "RulesResponse"), "400": noParams, "503": off},
	}}
	paths["/api/v1/silences"] = obj{
		"get": obj{
			"operationId": "listSilences",
			"summary":     "Silences (active, pending and expired)",
			"responses":   obj{"200": jsonResp("silences", "SilencesResponse"), "400": noParams, "503": off},
		},
		"post": obj{
			"operationId": "createSilence",
			"summary":     "Create (or with id replace) a silence; persisted across restarts",
			"requestBody": obj{"required": true, "content": obj{"application/json": obj{"schema": ref("SilenceInput")}}},
			"responses": obj{
				"200": jsonResp("the silence", "SilenceResponse"),
				"400": errResp("invalid silence"),
				"404": errResp("no silence with that id"),
				"503": off,
			},
		},
	}
	paths["/api/v1/silences/{id}"] = obj{"delete": obj{
		"operationId": "expireSilence",
		"summary":     "Expire a silence now (it stays listed as expired)",
		"parameters":  []any{pparam("id", "silence id", "0123456789abcdef")},
		"responses": obj{
			"200": jsonResp("expired", "SilenceDeleted"),
			"404": errResp("no silence with that id"),
			"503": off,
		},
	}}
}
