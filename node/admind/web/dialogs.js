// The page's two modal dialogs: a confirmation before any change to the
// fleet, and the sign-in form for HTTP Basic credentials (a user of the
// node's scheduler.auth).

function run(dialog, onOpen) {
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue),
        {once: true});
    dialog.returnValue = "cancel";
    onOpen();
    dialog.showModal();
  });
}

/** Resolves to true when the user clicks Confirm. */
export async function confirmAction(title, text, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm-dialog");
  const ok = document.getElementById("confirm-ok");
  const answer = await run(dialog, () => {
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    ok.textContent = okLabel;
  });
  return answer === "ok";
}

/** Resolves to {user, password}, or null when cancelled. */
export async function askLogin(message) {
  const dialog = document.getElementById("login-dialog");
  const user = document.getElementById("login-user");
  const password = document.getElementById("login-password");
  const answer = await run(dialog, () => {
    document.getElementById("login-text").textContent = message || "";
    password.value = "";
    setTimeout(() => (user.value ? password : user).focus(), 0);
  });
  if (answer !== "ok" || !user.value) return null;
  return {user: user.value, password: password.value};
}
