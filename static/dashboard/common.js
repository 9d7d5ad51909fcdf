// Shared by the dashboard pages: configuration from the server, translated strings,
// numbers, durations and times in the page's language and the site's time zone.
(function () {
  "use strict";
  const node = document.getElementById("page-config");
  const config = node ? JSON.parse(node.textContent) : { lang: "en", timeZone: "UTC", strings: {} };
  const lang = config.lang || "en";
  const numberFormats = {};

  function t(key, params) {
    let text = (config.strings && config.strings[key]) || key;
    if (params) {
      // Python %-style placeholders: %(name)s, %(name)d, %(name)02d.
      text = text.replace(/%\((\w+)\)(0?\d*)([sd])/g, (m, name, width, kind) => {
        let value = params[name];
        if (kind === "d") {
          value = String(Math.trunc(value));
          if (width) value = value.padStart(parseInt(width, 10), "0");
        }
        return String(value);
      });
    }
    return text;
  }

  function number(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    digits = digits || 0;
    if (!numberFormats[digits]) {
      numberFormats[digits] = new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits });
    }
    const rounded = Number(value.toFixed(digits));
    return numberFormats[digits].format(rounded === 0 ? 0 : rounded);
  }

  // Same rules as the `duration` template filter.
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return t("dur_s", { s: seconds });
    let minutes = Math.floor(seconds / 60);
    const secs = seconds % 60;
    if (minutes < 10 && secs) return t("dur_min_s", { m: minutes, s: secs });
    if (minutes < 60) return t("dur_min", { m: minutes });
    let hours = Math.floor(minutes / 60);
    minutes %= 60;
    if (hours < 24) return t("dur_h_min", { h: hours, m: minutes });
    const days = Math.floor(hours / 24);
    hours %= 24;
    return t("dur_d_h", { d: days, h: hours });
  }

  const timeFormat = new Intl.DateTimeFormat(lang, {
    timeZone: config.timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const dayMonthTime = new Intl.DateTimeFormat(lang, {
    timeZone: config.timeZone, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  const dayKey = new Intl.DateTimeFormat("en-CA", { timeZone: config.timeZone, year: "numeric", month: "2-digit", day: "2-digit" });

  // Same rules as the `moment` template filter: a time today, else day, month and time.
  function moment(date) {
    if (!date) return "—";
    if (dayKey.format(date) === dayKey.format(new Date())) return timeFormat.format(date);
    return dayMonthTime.format(date);
  }

  function parseDate(text) {
    return text ? new Date(text) : null;
  }

  window.SM = { config, lang, t, number, duration, moment, parseDate };
})();
