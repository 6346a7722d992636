"""Posts over GraphQL: the Post type and its parts (`types`), and writing, editing, deleting,
liking, reposting and bookmarking them (`mutations`)."""
