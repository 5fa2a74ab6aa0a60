"""The example shop's admins rebuilt on django-unfold's ``ModelAdmin``, as its docs ask.

A project using unfold writes ``class OrderAdmin(AuditHistoryMixin, ModelAdmin)`` with
``unfold.admin.ModelAdmin``. This module gives every ModelAdmin of the shop (and the
user admin) that base, keeping everything else of ``example_project/shop/admin.py``:
``AuditHistoryMixin`` comes first in the method resolution order, unfold's next.
Listed after ``shop`` in ``INSTALLED_APPS``, so the shop's admins are registered.
"""

from django.contrib import admin
from django.contrib.auth.models import User
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from shop.models import Customer, DigitalProduct, Order, OrderItem, Product, Tag

# The user admin takes unfold's forms too, as its docs show.
USER_FORMS = {
    "form": UserChangeForm,
    "add_form": UserCreationForm,
    "change_password_form": AdminPasswordChangeForm,
}

for model in (Customer, Tag, Product, DigitalProduct, Order, OrderItem, User):
    stock = type(admin.site._registry[model])
    admin.site.unregister(model)
    attrs = USER_FORMS if model is User else {}
    admin.site.register(model, type(stock.__name__, (stock, ModelAdmin), attrs))
