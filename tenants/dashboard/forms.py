from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm

from tenants import storefront
from tenants.models import ApiKey

SCOPE_HELP = {
    ApiKey.Scope.INGEST: "Send and read customers, products, events and imports.",
    ApiKey.Scope.RECOMMEND: "Ask for recommendations and send feedback.",
    ApiKey.Scope.ADMIN: "Everything, including shop settings. Keep it on your servers.",
    ApiKey.Scope.PUBLISHABLE: "For your shop's pages (the storefront snippet): recommendations and single "
    "events only, from the origins below. Alone: not with another scope.",
}


class EmailAuthenticationForm(AuthenticationForm):
    """Usernames are email addresses; say so on the form."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "placeholder": "you@shop.com"})


class ShopNameForm(forms.Form):
    shop_name = forms.CharField(
        label="Shop name", max_length=200, widget=forms.TextInput(attrs={"placeholder": "Acme Outdoor"})
    )

    def clean_shop_name(self) -> str:
        name = self.cleaned_data["shop_name"].strip()
        if not any(ch.isalnum() for ch in name):
            raise forms.ValidationError("The shop name must contain letters or digits.")
        return name


class SignUpForm(ShopNameForm):
    email = forms.EmailField(label="Work email", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters, not a common password, not all digits, unlike your email.",
    )

    def clean_email(self) -> str:
        # Whether the address has an account is not checked here: the form's answer must not tell
        # (tenants.accounts.register decides, and the address's owner is told by e-mail).
        return get_user_model().objects.normalize_email(self.cleaned_data["email"].strip())

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            user = get_user_model()(username=cleaned.get("email", ""), email=cleaned.get("email", ""))
            try:
                password_validation.validate_password(password, user)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. Storefront (production)"})
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
    )
    allowed_origins = forms.CharField(
        label="Origins (publishable keys)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://shop.example\nhttps://www.shop.example"}),
        help_text="One per line: the sites whose pages use the key. https only; http://localhost for development.",
    )

    def clean_allowed_origins(self) -> list[str]:
        try:
            return storefront.clean_origins(self.cleaned_data["allowed_origins"].splitlines())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        scopes, origins = cleaned.get("scopes") or [], cleaned.get("allowed_origins")
        publishable = ApiKey.Scope.PUBLISHABLE in scopes
        if publishable and len(scopes) > 1:
            self.add_error("scopes", "A publishable key has no other scope: everyone who opens your shop sees it.")
        if origins is not None:
            if publishable and not origins:
                self.add_error("allowed_origins", "A publishable key needs at least one origin.")
            elif origins and not publishable:
                self.add_error("allowed_origins", "Only a publishable key has origins.")
        return cleaned

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name

    def scope_options(self) -> list[tuple[str, str, str, bool]]:
        """(value, label, help, checked) for the template's checkbox list."""
        chosen = set(self["scopes"].value() or [])
        return [(value, label, SCOPE_HELP[value], value in chosen) for value, label in ApiKey.Scope.choices]


class SwitchShopForm(forms.Form):
    shop = forms.IntegerField(min_value=1)
    next = forms.CharField(required=False, max_length=200)
