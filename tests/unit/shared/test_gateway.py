from shared.gateway import owner_of


def test_paths_route_to_their_owning_service() -> None:
    assert owner_of("/v1/content/abc/publish") == "content"
    assert owner_of("/r/Xy12") == "sharing"
    assert owner_of("/v1/me/points") == "recognition"
    assert owner_of("/v1/me/stats") == "metrics"
    assert owner_of("/v1/contents") is None  # a prefix must end at a path segment
    assert owner_of("/admin") is None
