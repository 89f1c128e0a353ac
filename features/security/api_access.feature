@security
Feature: The management API knows who is calling and what their role allows
  As an admin, I want every call to the service to name its caller and to be refused
  unless the caller's role allows it, so that nobody on the network can take over a
  device by asking for its credentials or download firmware meant for a device.

  Background:
    Given the service is running with a fresh database
    And the admin has created "vera" as a viewer and "otto" as an operator

  Scenario: a caller without a token is refused, and told how to authenticate
    When someone without a token asks for the devices, a device's credentials and an OS image
    Then each answer is 401 with a problem saying an API token is needed

  Scenario: a viewer reads but cannot change, and only an operator gets device credentials
    When "vera" lists the models and then asks for credentials for device "victim"
    Then the list is answered and the credentials are refused naming the operator role
    When "otto" asks for credentials for device "victim"
    Then the service says device security is off, not that "otto" may not

  Scenario: a person signs in with a password, and a revoked token stops working
    Given the admin has given "vera" the password "a long pass phrase"
    When "vera" signs in with that password
    Then she gets a token that says she is a viewer
    When the admin revokes that token
    Then the token is refused from then on
