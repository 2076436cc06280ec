"""The client's address behind trusted proxies (web/client_ip.py): who may set X-Forwarded-For."""

from __future__ import annotations

import pytest

from config.settings import SettingsError, load_settings
from web.client_ip import client_ip, parse_networks

NGINX = parse_networks("127.0.0.1, ::1")
CHAIN = parse_networks("127.0.0.1, 10.0.0.0/8")


def test_no_trusted_proxies_means_the_peer_whatever_the_header_says() -> None:
    assert client_ip("127.0.0.1", "203.0.113.7", ()) == "127.0.0.1"
    assert client_ip("198.51.100.2", None, ()) == "198.51.100.2"


def test_behind_nginx_the_address_nginx_appended_is_the_client() -> None:
    assert client_ip("127.0.0.1", "203.0.113.7", NGINX) == "203.0.113.7"
    assert client_ip("::1", "2001:db8::5", NGINX) == "2001:db8::5"


def test_a_peer_that_is_no_trusted_proxy_cannot_choose_its_address() -> None:
    # Straight to the app port, past nginx: the header is the attacker's own text.
    assert client_ip("198.51.100.2", "10.0.0.1", NGINX) == "198.51.100.2"
    assert client_ip("198.51.100.2", "127.0.0.1", NGINX) == "198.51.100.2"


def test_a_forged_left_part_of_the_header_is_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the real peer.
    assert client_ip("127.0.0.1", "1.2.3.4, 203.0.113.7", NGINX) == "203.0.113.7"
    # Forging an address of a trusted proxy only moves the walk one step, to the real client.
    assert client_ip("127.0.0.1", "10.0.0.9, 203.0.113.7", CHAIN) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    # client -> load balancer 10.0.0.5 -> nginx on 127.0.0.1 -> Pulpit
    assert client_ip("127.0.0.1", "203.0.113.7, 10.0.0.5", CHAIN) == "203.0.113.7"
    # The header may come twice; the values are one list, in order.
    assert client_ip("127.0.0.1", ["6.6.6.6", "203.0.113.7, 10.0.0.5"], CHAIN) == "203.0.113.7"


def test_garbage_stops_the_walk_at_the_last_trusted_hop() -> None:
    assert client_ip("127.0.0.1", "", NGINX) == "127.0.0.1"
    assert client_ip("127.0.0.1", "unknown", NGINX) == "127.0.0.1"
    assert client_ip("127.0.0.1", "evil.example, 10.0.0.5", CHAIN) == "10.0.0.5"
    assert client_ip("127.0.0.1", "203.0.113.7\r\nX-Evil: 1", NGINX) == "127.0.0.1"


def test_all_trusted_means_the_left_most_address() -> None:
    assert client_ip("127.0.0.1", "10.1.2.3, 10.0.0.5", CHAIN) == "10.1.2.3"


def test_ports_brackets_and_mapped_ipv4_are_understood() -> None:
    assert client_ip("127.0.0.1", "203.0.113.7:4711", NGINX) == "203.0.113.7"
    assert client_ip("127.0.0.1", "[2001:db8::5]:4711", NGINX) == "2001:db8::5"
    assert client_ip("::ffff:127.0.0.1", "203.0.113.7", NGINX) == "203.0.113.7"


def test_the_setting_is_parsed_and_checked() -> None:
    assert [str(n) for n in parse_networks(" 10.0.0.0/8 ,, 192.168.1.1,fd00::/8")] == [
        "10.0.0.0/8",
        "192.168.1.1/32",
        "fd00::/8",
    ]
    assert load_settings({}, None).trusted_proxies == ""
    env = {"PULPIT_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8"}
    assert load_settings(env, None).trusted_proxies == "127.0.0.1,10.0.0.0/8"
    with pytest.raises(SettingsError, match="PULPIT_TRUSTED_PROXIES"):
        load_settings({"PULPIT_TRUSTED_PROXIES": "nginx.local"}, None)
    with pytest.raises(ValueError, match="nginx.local"):
        parse_networks("nginx.local")
