from django.contrib.auth.views import redirect_to_login

# Open without signing in: the login and password-reset pages, invite links (a person without an
# account signs up there), static files, the API (it checks its own token).
OPEN_PREFIXES = ("/accounts/login/", "/accounts/password_reset/", "/accounts/reset/", "/invites/", "/static/",
                 "/api/", "/favicon.ico")


class LoginRequiredEverywhere:
    """Every page needs a signed-in user but the login page (the API checks its own token)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(OPEN_PREFIXES):
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)
