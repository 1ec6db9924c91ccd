from django.shortcuts import render


def home(request):
    return render(request, "tracking/home.html", {})
