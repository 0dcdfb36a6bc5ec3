use super::*;

#[test]
fn fixture_addresses_parse_and_print_back() {
    let address: RuntimeAddress = "fixture:trio-legacy".parse().unwrap();
    assert_eq!(address, RuntimeAddress::Fixture { name: "trio-legacy".into() });
    assert_eq!(address.to_string(), "fixture:trio-legacy");
}

#[test]
fn path_traversal_in_fixture_names_is_refused() {
    assert!(matches!(
        "fixture:../etc".parse::<RuntimeAddress>(),
        Err(RuntimeAddressError::BadFixtureName(_))
    ));
    assert!(matches!("fixture:".parse::<RuntimeAddress>(), Err(RuntimeAddressError::BadFixtureName(_))));
}

#[test]
fn local_addresses_take_an_optional_absolute_state_dir() {
    assert_eq!("local".parse::<RuntimeAddress>(), Ok(RuntimeAddress::Local { state_dir: None }));
    assert_eq!(
        "local:/srv/openclaw".parse::<RuntimeAddress>(),
        Ok(RuntimeAddress::Local { state_dir: Some("/srv/openclaw".into()) })
    );
    assert!(matches!(
        "local:relative".parse::<RuntimeAddress>(),
        Err(RuntimeAddressError::RelativeStateDir(_))
    ));
}

#[test]
fn ssh_addresses_parse_user_host_port_and_state_dir() {
    let address: RuntimeAddress = "ssh://warp@10.0.0.5:2222/srv/openclaw".parse().unwrap();
    assert_eq!(
        address,
        RuntimeAddress::Ssh {
            user: Some("warp".into()),
            host: "10.0.0.5".into(),
            port: Some(2222),
            state_dir: Some("/srv/openclaw".into())
        }
    );
    assert_eq!(address.to_string(), "ssh://warp@10.0.0.5:2222/srv/openclaw");
    assert_eq!(
        "ssh://host".parse::<RuntimeAddress>(),
        Ok(RuntimeAddress::Ssh { user: None, host: "host".into(), port: None, state_dir: None })
    );
    for bad in ["ssh://", "ssh://host:port", "ssh://-oProxyCommand=x", "ssh://-oFoo", "ssh://a b"] {
        assert!(bad.parse::<RuntimeAddress>().is_err(), "{bad}");
    }
    assert!(matches!("ftp://h".parse::<RuntimeAddress>(), Err(RuntimeAddressError::Unknown(_))));
}

#[test]
fn gateway_addresses_take_ws_or_wss_urls_without_credentials() {
    let address: RuntimeAddress = "gateway:ws://127.0.0.1:18789".parse().unwrap();
    assert_eq!(address, RuntimeAddress::Gateway { url: "ws://127.0.0.1:18789".into() });
    assert_eq!(address.to_string(), "gateway:ws://127.0.0.1:18789");
    assert!(!address.gateway_tls());
    assert!("gateway:wss://gw.example.org/openclaw".parse::<RuntimeAddress>().unwrap().gateway_tls());
    for bad in [
        "gateway:http://h:1",
        "gateway:ws://user:secret@h:1",
        "gateway:ws://h:notaport",
        "gateway:ws://:1",
        "gateway:ws://h:1/?token=x",
        "gateway:ws://-h:1",
    ] {
        assert!(matches!(bad.parse::<RuntimeAddress>(), Err(RuntimeAddressError::BadGateway(_))), "{bad}");
    }
}
