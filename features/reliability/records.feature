@docker @x86 @reliability @slow
Feature: The record of an update says what the device runs, even when the service died during it
  As an IT operator, I want the service's record of every update to say what the device
  really runs, so that a service crash during an update does not leave me a "failed"
  update on a device that took it. The service runs in its own process and is killed for
  real; when it starts again it closes the interrupted deployment as failed, and corrects
  it once the device reports the version the update sent.

  Scenario Outline: the service is killed while a device installs new firmware over <protocol>
    Given a service in its own process with the <orchestrator> orchestrator and hello_world firmware "1.0.0" and "2.0.0" for "x86-tflm"
    And device "<name>" boots firmware "1.0.0" managed by that service
    When the service deploys firmware "2.0.0" to "<name>" and is killed as soon as the device has written it
    And the service starts again
    Then the deployment is corrected to "firmware updated successfully" from what "<name>" reports
    And "<name>" runs firmware "2.0.0" on a confirmed image and answers inferences

    Examples:
      | protocol  | orchestrator | name        |
      | LwM2M     | lwm2m        | crash-lwm2m |
      | HTTP pull | http-pull    | crash-pull  |
