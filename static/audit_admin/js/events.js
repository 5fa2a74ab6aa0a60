/*
 * django-audit-admin: the event browser's username suggestions.
 *
 * Loaded as an external file through the admin's Media (no inline script, so the page
 * works under a strict Content-Security-Policy). Without it the user filter is a plain
 * text box that takes a username or #id.
 */
"use strict";
{
    function debounce(fn, wait) {
        let timer = null;
        return function () {
            clearTimeout(timer);
            timer = setTimeout(fn, wait);
        };
    }

    function suggest(input) {
        const list = document.getElementById(input.getAttribute("list"));
        const url = input.dataset.suggestUrl;
        if (!list || !url) {
            return;
        }
        let asked = "";
        input.addEventListener("input", debounce(function () {
            const term = input.value.trim();
            // "#12" names a user by id: nothing to suggest.
            if (!term || term === asked || term.startsWith("#")) {
                return;
            }
            asked = term;
            fetch(url + "?" + new URLSearchParams({term: term}), {
                credentials: "same-origin",
                headers: {Accept: "application/json"},
            })
                .then(function (response) {
                    return response.ok ? response.json() : {results: []};
                })
                .then(function (data) {
                    list.replaceChildren.apply(list, data.results.map(function (item) {
                        const option = document.createElement("option");
                        option.value = item.id;
                        return option;
                    }));
                })
                .catch(function () {
                    // Suggestions are a convenience: typing still works.
                });
        }, 200));
    }

    function ready(fn) {
        if (document.readyState !== "loading") {
            fn();
        } else {
            document.addEventListener("DOMContentLoaded", fn);
        }
    }

    ready(function () {
        document.querySelectorAll("input[data-suggest-url]").forEach(suggest);
    });
}
