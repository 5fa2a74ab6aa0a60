/*
 * django-audit-admin: progressive enhancements for the history pages.
 *
 * Loaded as an external, deferred file: the admin never relies on inline scripts, so
 * it works under a strict Content-Security-Policy. Every page works without it.
 * Nothing to enhance yet.
 */
"use strict";
