// The case page's "Print referral form" button (the print stylesheet prints only the form).
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.addEventListener("click", function () { window.print(); });
});
