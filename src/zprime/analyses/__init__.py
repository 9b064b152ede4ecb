"""The searches: each one a package that supplies what makes it a search (samples, selection,
observables, windows, model, results, figures) to the engine below it."""
