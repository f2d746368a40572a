// The LTI pages' script: post the deep-linking answer back to the platform, and check whether
// cookies can be set inside the LMS's frame before the login goes on there.
(function () {
  "use strict";
  var autosubmit = document.getElementById("lti-autosubmit");
  if (autosubmit) {
    autosubmit.submit();
    return;
  }
  var check = document.getElementById("lti-cookie-check");
  if (!check) {
    return;
  }
  var target = check.getAttribute("data-target");
  var name = "lti1p3_cookie_check";
  document.cookie = name + "=1; path=/; SameSite=None; Secure; Partitioned; max-age=60";
  if (document.cookie.indexOf(name + "=1") !== -1) {
    document.cookie = name + "=; path=/; SameSite=None; Secure; Partitioned; max-age=0";
    window.location.replace(target);
  } else {
    document.getElementById("lti-new-window").hidden = false;
  }
})();
